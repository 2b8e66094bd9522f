FROM python:3.11-slim

WORKDIR /srv/referee
COPY pyproject.toml README.md ./
COPY app ./app
COPY judges ./judges
COPY migrations ./migrations
COPY constitutions ./constitutions
COPY templates ./templates
RUN pip install --no-cache-dir .
# A non-editable install has no repository beside it: point at the copied folder.
ENV REFEREE_CONSTITUTIONS_DIR=/srv/referee/constitutions
ENV REFEREE_TEMPLATES_DIR=/srv/referee/templates

RUN useradd --create-home referee
USER referee
EXPOSE 8000
# Migrate, then serve: the schema is at head before the first request.
CMD ["sh", "-c", "referee db upgrade && referee serve --host 0.0.0.0 --port 8000"]
