"""The projects in this directory are run by ``tests/test_realapp_*.py`` through ``pytester``
(each in a directory of its own, as its users run it), never collected by sqlaudit's suite."""

collect_ignore = ["flask_blog", "starlette_admin", "fastapi_sqlmodel"]
