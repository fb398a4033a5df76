"""leanlake's Lambda functions: each turns its event into ObjectRefs and hands them to chalicelib.

Deployed with ``chalice deploy``; policies travel in the package (``policies/`` beside this file
or ``$LEANLAKE_POLICIES``). Importing this module needs no environment and no pyarrow.
"""

import os

from chalice import Chalice, Cron

from chalicelib import batch, runtime

# configure_logs=False: Chalice would otherwise take over the "leanlake" logger (our Powertools Logger),
# set it to ERROR and add a second stdout handler, dropping every ok/skip line and doubling errors.
app = Chalice(app_name="leanlake", configure_logs=False)

#: All buckets the policies name: the EventBridge rule only forwards their events.
BUCKETS = list(runtime.policies().buckets) if runtime.policies_path().exists() else []
# CloudFormation packaging cannot express on_s3_event; there the EventBridge rule covers every bucket.
UPLOAD_BUCKET = runtime.upload_bucket() if os.environ.get("LEANLAKE_PACKAGE_FORMAT") != "cloudformation" else None
UPLOAD_QUEUE = os.environ.get("LEANLAKE_QUEUE")

if UPLOAD_BUCKET:

    @app.on_s3_event(bucket=UPLOAD_BUCKET, events=["s3:ObjectCreated:*"])
    def on_upload(event):
        """S3 notification for one bucket (records decoded once, in chalicelib.events)."""
        return runtime.handle_s3_notification(event.to_dict(), event.context)


if BUCKETS:

    @app.on_cw_event({"source": ["aws.s3"], "detail-type": ["Object Created"], "detail": {"bucket": {"name": BUCKETS}}})
    def on_object_created(event):
        """S3 → EventBridge "Object Created", for every bucket the policies name."""
        return runtime.handle_eventbridge(event.to_dict(), event.context)


@app.on_cw_event({"source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"]})
def on_alarm(event):
    """A CloudWatch alarm going to ALARM runs the sweep of the policies that name it in on_alarm."""
    return runtime.handle_alarm(event.to_dict(), event.context)


@app.schedule(Cron(0, 3, "*", "*", "?", "*"))
def daily_sweep(event):
    """Every day at 03:00 UTC: backfill, storage classes and the retention Lifecycle can't express;
    fanned out through the work queue, so it finishes at any size."""
    return runtime.scheduled_sweep(event.context)


if UPLOAD_QUEUE:

    @app.on_sqs_message(queue=UPLOAD_QUEUE, batch_size=10)
    def on_queued_upload(event):
        """S3 notifications delivered through SQS, and the sweeps' continuations and work items."""
        return runtime.handle_sqs(event.to_dict(), event.context)


@app.lambda_function(name="batch_task")
def batch_task(event, context):
    """S3 Batch Operations LambdaInvoke tasks, one object each (jobs made by `leanlake batch`)."""
    return batch.handle_batch_invocation(event, context)
