"""`python -m gpuq_cli` runs the `gpuq` command line."""

from gpuq_cli.main import main

if __name__ == "__main__":
    main()
