"""What notifications cost: fan-out of N job events into deliveries (database work the node loop does
after its tick) and sending them, one worker, to a webhook receiver on this machine (http.server).

    .venv/bin/python benchmarks/notify.py [--events 2000] [--database-url URL]
"""

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from _common import migrated_user, setup_django  # benchmarks/ is on sys.path when run as a script


class Ok(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    setup_django("gpuq-bench-notify-", args.database_url)
    from django.db import transaction
    from django.utils import timezone

    from notifications import fanout, sending
    from notifications.models import Delivery, Webhook
    from scheduling import events
    from scheduling.models import Job

    user = migrated_user("notify")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Webhook.objects.create(owner=user, url=f"http://127.0.0.1:{server.server_address[1]}/hook")
    fanout.cursor()
    now = timezone.now()
    jobs = Job.objects.bulk_create(
        [
            Job(owner=user, status="failed", argv=["true"], submitted_at=now, queue_order=i)
            for i in range(args.events)
        ]
    )
    with transaction.atomic():
        events.emit_jobs(jobs, from_status="running", reasons=["exit code 1"] * len(jobs))

    start = time.perf_counter()
    made = fanout.fan_out()
    fan_seconds = time.perf_counter() - start
    start = time.perf_counter()
    sent = 0
    while tried := sending.send_due():
        sent += tried
    send_seconds = time.perf_counter() - start
    delivered = Delivery.objects.filter(status="delivered").count()
    server.shutdown()
    json.dump(
        {
            "database": "postgresql" if args.database_url else "sqlite",
            "events": args.events,
            "deliveries_made": made,
            "fan_out_seconds": round(fan_seconds, 2),
            "fan_out_events_per_second": round(args.events / fan_seconds),
            "sent": sent,
            "delivered": delivered,
            "send_seconds": round(send_seconds, 2),
            "webhooks_per_second": round(sent / send_seconds, 1),
        },
        sys.stdout,
        indent=1,
    )
    print()


if __name__ == "__main__":
    main()
