from fastapi import APIRouter, HTTPException, Query
from sqlmodel import select

from app.db import SessionDep
from app.models import Hero, HeroCreate, HeroPublic, HeroPublicWithTeam, HeroUpdate

router = APIRouter(prefix="/heroes", tags=["heroes"])


@router.post("/", response_model=HeroPublic)
def create_hero(*, session: SessionDep, hero: HeroCreate) -> Hero:
    db_hero = Hero.model_validate(hero)
    session.add(db_hero)
    session.commit()
    session.refresh(db_hero)
    return db_hero


@router.get("/", response_model=list[HeroPublic])
def read_heroes(
    *, session: SessionDep, offset: int = 0, limit: int = Query(default=100, le=100)
) -> list[Hero]:
    return list(session.exec(select(Hero).offset(offset).limit(limit)).all())


@router.get("/roster")
def read_roster(*, session: SessionDep) -> list[dict[str, str | None]]:
    """Each hero with the team's name, for the printed roster."""
    heroes = session.exec(select(Hero).order_by(Hero.name)).all()
    return [
        {"hero": hero.name, "team": hero.team.name if hero.team else None}  # lazy load per hero
        for hero in heroes
    ]


@router.get("/{hero_id}", response_model=HeroPublicWithTeam)
def read_hero(*, session: SessionDep, hero_id: int) -> Hero:
    hero = session.get(Hero, hero_id)
    if not hero:
        raise HTTPException(status_code=404, detail="Hero not found")
    return hero


@router.patch("/{hero_id}", response_model=HeroPublic)
def update_hero(*, session: SessionDep, hero_id: int, hero: HeroUpdate) -> Hero:
    db_hero = session.get(Hero, hero_id)
    if not db_hero:
        raise HTTPException(status_code=404, detail="Hero not found")
    db_hero.sqlmodel_update(hero.model_dump(exclude_unset=True))
    session.add(db_hero)
    session.commit()
    session.refresh(db_hero)
    return db_hero


@router.delete("/{hero_id}")
def delete_hero(*, session: SessionDep, hero_id: int) -> dict[str, bool]:
    hero = session.get(Hero, hero_id)
    if not hero:
        raise HTTPException(status_code=404, detail="Hero not found")
    session.delete(hero)
    session.commit()
    return {"ok": True}
