"""Deploying leanlake: the Lambda packages (``package``) and the least-privilege IAM policy (``iam``).

Nothing here runs in Lambda: the build leaves this package out of the deployment zip. Importing
it is cheap (the standard library only); ``iam`` and ``package.build`` load the policies.

Example (from the project root; also ``make package`` / ``make iam``)::

    python -m chalicelib.deploy iam                 # regenerate .chalice/policy-<stage>.json
    python -m chalicelib.deploy package --stage dev # dist/terraform/, dist/cloudformation/
"""
