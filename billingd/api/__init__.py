"""`radbill api`: the billing domain's HTTP face (FastAPI on uvicorn, JSON under /api/v1/)."""
