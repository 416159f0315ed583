# mcpool in a container. memcached is installed too, so `mcpool bench` without --server starts its own
# memcached on loopback inside the container; with --server or MCPOOL_SERVERS it tests yours.
#   docker build -t mcpool .
#   docker run --rm mcpool bench --strategy fifo --duration 5s
#   docker run --rm --network host -e MCPOOL_SERVERS=127.0.0.1:11211 mcpool bench --duration 5s
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN apt-get update \
 && apt-get install -y --no-install-recommends memcached \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .
# hdrhistogram has no wheel for arm64: a compiler comes in for the build and leaves in the same layer.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && pip install --no-cache-dir '.[metrics]' \
 && apt-get purge -y --auto-remove gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 --user-group mcpool
USER 10001:10001
WORKDIR /home/mcpool

ENTRYPOINT ["mcpool"]
CMD ["--help"]
