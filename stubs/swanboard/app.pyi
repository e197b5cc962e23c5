# swanboard's FastAPI application, the one SwanBoardRun.run serves with uvicorn.
from fastapi import FastAPI

app: FastAPI
