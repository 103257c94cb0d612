# census-builder image: the CLI is the entrypoint, e.g.
#   docker run --rm -v $PWD:/data census-builder build --version V --manifest /data/manifest.csv --workdir /data/out
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/census-builder

# Dependencies first (pinned in pyproject.toml), so code changes do not reinstall them.
COPY pyproject.toml README.md ./
COPY schema/ schema/
RUN mkdir -p census_builder validation \
    && touch census_builder/__init__.py validation/__init__.py \
    && pip install . \
    && pip uninstall -y census-builder

COPY census_builder/ census_builder/
COPY validation/ validation/
RUN pip install --no-deps . && python -m census_builder --help > /dev/null

WORKDIR /data
ENTRYPOINT ["python", "-m", "census_builder"]
CMD ["--help"]
