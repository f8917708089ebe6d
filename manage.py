#!/usr/bin/env python
"""Django's command-line utility for gpuq."""

import os
import sys


def main():
    from queueproject.hardening import harden_process

    harden_process()  # first: every file this process creates is the server account's alone
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "queueproject.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
