"""The command line: ``main`` (parser, dispatch, errors to exit status), ``logs``, ``settings`` (``config``).

One module per command group: ``build`` (build, validate, example) and ``release`` (publish, release, notes).
"""
