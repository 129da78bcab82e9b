"""Query and path parameters shared by the routers: bounded, so no value a
client sends reaches the database unchecked."""
from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from ..models import MAX_ID

NO_NUL = r"^[^\x00]*$"

IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="the id")]
Limit = Annotated[int, Query(ge=1, le=1000, description="at most this many (1-1000)")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="skip this many first")]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
Search = Annotated[str | None, Query(max_length=500, pattern=NO_NUL)]
