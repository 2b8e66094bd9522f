"""The HTTP shell: FastAPI routes over app.labeling."""
