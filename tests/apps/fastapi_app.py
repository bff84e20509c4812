"""A FastAPI application that answers which loop serves it.

    uvicorn --loop asyncloop:new_event_loop fastapi_app:app
"""
import os

from fastapi import FastAPI

from asgi_app import loop_name

app = FastAPI()


@app.get('/')
async def which_loop():
    return {'loop': loop_name(), 'pid': os.getpid()}
