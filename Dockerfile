# census-builder image. The builder CLI is the entrypoint:
#   docker build --build-arg GIT_COMMIT=$(git rev-parse HEAD) -t census-builder .
#   docker run --rm -v $PWD:/data census-builder build --version V --manifest /data/manifest.csv --workdir /data/out
# The independent release checker:
#   docker run --rm -v $PWD:/data --entrypoint census-validate census-builder /data/out/V/soma --manifest /data/m.csv
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/census-builder

# Dependencies first, exactly as locked (hash-checked), so code changes do not reinstall them.
COPY requirements.lock ./
RUN pip install --no-input --require-hashes -r requirements.lock

COPY pyproject.toml README.md ./
COPY schema/ schema/
COPY census_builder/ census_builder/
COPY validation/ validation/
RUN pip install --no-input --no-deps . && pip check && census-builder --help > /dev/null && census-validate --help > /dev/null

# Releases record the commit they were built from (census_info metadata "git_commit").
ARG GIT_COMMIT=""
ENV CENSUS_BUILDER_GIT_COMMIT=${GIT_COMMIT}

# Never run as root: files written to mounted volumes belong to this user (override with --user).
RUN useradd --create-home --uid 10001 census
USER census
WORKDIR /data
# Local dask workers default to the CPUs this container may use (its cgroup CPU quota), not the host's.
ENTRYPOINT ["census-builder"]
CMD ["--help"]
