from fastapi import FastAPI

from app.routes import heroes, teams

app = FastAPI(title="Heroes")
app.include_router(heroes.router)
app.include_router(teams.router)
