from quickstart_models import User, make_engine
from sqlalchemy import select
from sqlalchemy.orm import Session

import sqlaudit

engine = make_engine()
sqlaudit.instrument(engine)

with sqlaudit.audit("GET /users", on_finding="ignore") as report, Session(engine) as session:
    for user in session.scalars(select(User)):
        print(user.name, len(user.comments))

print(report.render())
