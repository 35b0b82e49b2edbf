from fastapi import APIRouter, HTTPException
from sqlmodel import func, select

from app.db import SessionDep
from app.models import Hero, Team, TeamCreate, TeamPublic, TeamPublicWithHeroes, TeamUpdate

router = APIRouter(prefix="/teams", tags=["teams"])


@router.post("/", response_model=TeamPublic)
async def create_team(*, session: SessionDep, team: TeamCreate) -> Team:
    db_team = Team.model_validate(team)
    session.add(db_team)
    session.commit()
    session.refresh(db_team)
    return db_team


@router.get("/", response_model=list[TeamPublic])
async def read_teams(*, session: SessionDep, offset: int = 0, limit: int = 100) -> list[Team]:
    return list(session.exec(select(Team).offset(offset).limit(limit)).all())


@router.get("/sizes")
async def team_sizes(*, session: SessionDep) -> dict[str, int]:
    """Heroes per team, counted by the database."""
    query = select(Team.name, func.count(Hero.id)).join(Hero, isouter=True).group_by(Team.id)
    return dict(session.exec(query).all())


@router.get("/full", response_model=list[TeamPublicWithHeroes])
def read_teams_with_heroes(*, session: SessionDep) -> list[Team]:
    return list(session.exec(select(Team).order_by(Team.id)).all())


@router.get("/{team_id}", response_model=TeamPublicWithHeroes)
def read_team(*, team_id: int, session: SessionDep) -> Team:
    team = session.get(Team, team_id)
    if not team:
        raise HTTPException(status_code=404, detail="Team not found")
    return team


@router.patch("/{team_id}", response_model=TeamPublic)
def update_team(*, session: SessionDep, team_id: int, team: TeamUpdate) -> Team:
    db_team = session.get(Team, team_id)
    if not db_team:
        raise HTTPException(status_code=404, detail="Team not found")
    db_team.sqlmodel_update(team.model_dump(exclude_unset=True))
    session.add(db_team)
    session.commit()
    session.refresh(db_team)
    return db_team
