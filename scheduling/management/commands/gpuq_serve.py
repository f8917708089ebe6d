"""Migrate, make sure an admin and a token exist, then run the web server and this node together."""

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.utils import timezone

from gpus.models import Node
from queueproject.hardening import tighten_data_modes
from scheduling import supervise


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-node", action="store_true", help="serve only; nodes run elsewhere")

    def handle(self, *args, host, port, no_node, **options):
        tighten_data_modes()  # an older install left the database and logs world-readable
        call_command("migrate", interactive=False, verbosity=0)
        call_command("gpuq_bootstrap", url=f"http://{host}:{port}/")
        flag = supervise.StopFlag()
        children = []
        try:
            if not no_node:
                # The node first: once the web server answers, submissions find its GPUs.
                started = timezone.now()
                children.append(supervise.manage_py("gpuq_node", env={"GPUQ_NODE_LOCAL": "1"}))
                registered = Node.objects.filter(name=settings.GPUQ_NODE_NAME, heartbeat_at__gte=started)
                while not (flag.stopping or registered.exists() or children[0].poll() is not None):
                    flag.sleep(0.1)
            children.append(supervise.manage_py("gpuq_web", "--host", host, "--port", str(port)))
            while not flag.stopping:
                if any(child.poll() is not None for child in children):
                    self.stderr.write("a gpuq process exited; stopping the others")
                    break
                flag.sleep(0.5)
        finally:
            self.stdout.write("stopping gpuq…")
            supervise.stop(children, grace=settings.GPUQ_KILL_GRACE_SECONDS + 5)
        self.stdout.write("gpuq stopped")
