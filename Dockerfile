FROM python:3.11-slim

WORKDIR /srv/referee
COPY pyproject.toml README.md ./
COPY app ./app
COPY judges ./judges
COPY migrations ./migrations
RUN pip install --no-cache-dir .

RUN useradd --create-home referee
USER referee
EXPOSE 8000
# Migrate, then serve: the schema is at head before the first request.
CMD ["sh", "-c", "referee db upgrade && referee serve --host 0.0.0.0 --port 8000"]
