# mesg-pusher: the MESG engine builds this image from the service's folder and runs it with
# MESG_ENDPOINT, MESG_TOKEN and the PUSHER_* variables set.
#
# Only classic Dockerfile syntax is used (no BuildKit-only features such as RUN --mount or
# heredocs): the MESG engine builds through the Docker API, which may use the legacy builder.

# ---- builder: turn the source into a wheel -------------------------------------------------
FROM python:3.11-slim-bookworm AS builder

WORKDIR /build

# pyproject.toml declares readme = "README.md", so the build fails without it.
COPY pyproject.toml README.md mesg.yml ./
COPY src ./src

# src/mesg_pusher/mesg.yml is a symlink to ../../mesg.yml in the repository. A symlink may
# arrive as a symlink, as a plain text file holding "../../mesg.yml" (Git on Windows), or be
# dropped by a packer; replace it with the real file so the wheel ships the real definition.
RUN cp --remove-destination mesg.yml src/mesg_pusher/mesg.yml

# --no-deps: only our own wheel here; its dependencies are installed in the runtime stage.
# The build backend (setuptools) is fetched by pip into a throw-away isolated environment.
# The check after it fails the build, rather than the service at start-up, if the wheel lacks
# the real definition or the generated gRPC modules.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist . \
    && python -c "import glob, zipfile; \
w = zipfile.ZipFile(glob.glob('/dist/*.whl')[0]); names = w.namelist(); \
assert w.read('mesg_pusher/mesg.yml') == open('mesg.yml', 'rb').read(), 'mesg.yml'; \
assert any(n.startswith('mesg_pusher/_proto/mesg/api/') for n in names), '_proto'"

# ---- runtime: the wheel and its dependencies, nothing else ---------------------------------
# A fresh base: no source tree, no build backend, no compiler (dependencies install from
# pre-built wheels; a dependency without a wheel for the platform fails the build here).
FROM python:3.11-slim-bookworm

# Logs reach `docker logs` / `mesg-cli service:logs` at once instead of sitting in a buffer.
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# An unprivileged system user (fixed uid/gid, no home, no login shell) to run the service.
RUN useradd --system --user-group --uid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin mesg

COPY --from=builder /dist /tmp/dist
# --no-cache-dir keeps pip's download cache out of the image.
RUN pip install --no-cache-dir /tmp/dist/*.whl \
    && rm -rf /tmp/dist

# The service reads ./mesg.yml (falling back to the copy inside the package). It stays owned by
# root, so the service user can read it but not change it. No .env is copied: settings come
# from the engine's environment.
WORKDIR /app
COPY mesg.yml ./

# Numeric uid:gid, so runtimes that enforce "run as non-root" can verify it without /etc/passwd.
USER 10001:10001

# Exec form: mesg-pusher is PID 1 and receives SIGTERM itself, which lets it finish in-flight
# executions within MESG_PUSHER_GRACE_PERIOD before the engine kills the container.
CMD ["mesg-pusher"]
