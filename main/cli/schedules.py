"""`jobqueue schedules`: the cron schedules the workers run, with their last and next slots."""

from main.cli import AsJson, app, open_queue
from main.cli.output import print_schedules


@app.command("schedules")
def schedules(as_json: AsJson = False) -> None:
    """Every cron schedule (@job(cron=...) and the jobs module's SCHEDULES): its job, cron expression and time
    zone, the last slot a worker enqueued and the next one."""
    print_schedules(open_queue().list_schedules_sync(), as_json)

