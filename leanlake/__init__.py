"""The tooling around leanlake's Lambda functions: the ``leanlake`` CLI, packaging and deployment, the demo.

Nothing here runs in Lambda. ``chalicelib/`` is what the functions run (Chalice zips that folder,
and only it, beside ``app.py``); this package uses it, never the reverse. Importing this package
and ``leanlake.deploy`` is cheap (the standard library only), so a bare ``python3`` can run
``python -m leanlake.deploy find-python``.
"""
