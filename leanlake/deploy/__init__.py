"""Deploying leanlake: the Lambda packages (``package``) and the least-privilege IAM policy (``iam``).

Nothing here runs in Lambda: the build copies only ``chalicelib/`` beside ``app.py``, never
``leanlake/``. Importing it is cheap (the standard library only); ``iam`` and ``package.build`` load
the policies. ``commands`` holds the package/deploy/destroy steps both front ends run:
``python -m leanlake.deploy`` (what ``make`` calls) and ``leanlake package|deploy|destroy``.

Example (from the project root; also ``make package`` / ``make iam``)::

    python -m leanlake.deploy iam                 # regenerate .chalice/policy-<stage>.json
    python -m leanlake.deploy package --stage dev # dist/terraform/, dist/cloudformation/
"""
