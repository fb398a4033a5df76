"""Turning S3 → EventBridge delivery on (or off) for a bucket without clobbering its other notifications.

``PutBucketNotificationConfiguration`` replaces a bucket's whole notification configuration, so
setting only ``EventBridgeConfiguration`` would silently drop every Lambda, SQS and SNS notification
someone else configured. This reads the configuration, changes only that key and writes the rest
back as it was. (S3 has no conditional write here: do not run it while someone else edits the same
bucket's notifications.)

Example:
    >>> import boto3                                              # doctest: +SKIP
    >>> set_eventbridge(boto3.client("s3"), "ml-lake", True)      # doctest: +SKIP
    True
"""

from __future__ import annotations

from typing import Any


def set_eventbridge(s3: Any, bucket: str, enabled: bool = True, dry_run: bool = False) -> bool:
    """Make S3 → EventBridge delivery for ``bucket`` ``enabled``; True when that changed something."""
    current = s3.get_bucket_notification_configuration(Bucket=bucket)
    current.pop("ResponseMetadata", None)
    if ("EventBridgeConfiguration" in current) == enabled:
        return False
    if enabled:
        current["EventBridgeConfiguration"] = {}
    else:
        del current["EventBridgeConfiguration"]
    if not dry_run:
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=current)
    return True
