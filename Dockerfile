# mesg-pusher: the MESG engine builds this image from the service's folder and runs it with
# MESG_ENDPOINT, MESG_TOKEN and the PUSHER_* variables set.
#
# Only classic Dockerfile syntax is used (no BuildKit-only features such as RUN --mount or
# heredocs): the MESG engine builds through the Docker API, which may use the legacy builder.

# ---- builder: the source into a wheel, the wheel into a virtual environment ----------------
FROM python:3.11-slim-bookworm AS builder

# binutils for `strip` only: several dependencies' wheels ship their C extensions with debug
# symbols (16 MB of the 69 MB the project added before). Not a compiler, and this stage is
# thrown away.
RUN apt-get update \
    && apt-get install -y --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /build

# pyproject.toml declares readme = "README.md", so the build fails without it.
COPY pyproject.toml README.md mesg.yml ./
COPY src ./src

# src/mesg_pusher/mesg.yml is a symlink to ../../mesg.yml in the repository. A symlink may
# arrive as a symlink, as a plain text file holding "../../mesg.yml" (Git on Windows), or be
# dropped by a packer; replace it with the real file so the wheel ships the real definition.
RUN cp --remove-destination mesg.yml src/mesg_pusher/mesg.yml

# --no-deps: only our own wheel here; it is installed with its dependencies into /opt/mesg-pusher below.
# The build backend (setuptools) is fetched by pip into a throw-away isolated environment.
# The check after it fails the build, rather than the service at start-up, if the wheel lacks
# the real definition or the generated gRPC modules, or holds anything but the service's package
# (the local engine, the harness and the benchmarks are the repository's, never the image's).
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist . \
    && python -c "import glob, zipfile; \
w = zipfile.ZipFile(glob.glob('/dist/*.whl')[0]); names = w.namelist(); \
assert w.read('mesg_pusher/mesg.yml') == open('mesg.yml', 'rb').read(), 'mesg.yml'; \
assert any(n.startswith('mesg_pusher/_proto/mesg/api/') for n in names), '_proto'; \
assert all(n.startswith(('mesg_pusher/', 'mesg_pusher-')) for n in names), 'not the service'"

# The service and its dependencies in a virtual environment without pip or setuptools, so the
# runtime stage takes exactly this one directory (one layer). pip compiles the bytecode here:
# the service's user cannot write __pycache__ at run time, so without it every start would
# recompile. --no-cache-dir keeps pip's download cache out. Dependencies install from pre-built
# wheels: there is no compiler, so one without a wheel for the platform fails the build here.
RUN python -m venv --without-pip /opt/mesg-pusher \
    && pip --python /opt/mesg-pusher/bin/python install --no-cache-dir /dist/*.whl \
    && find /opt/mesg-pusher -name '*.so*' -type f -exec strip --strip-unneeded {} +

# ---- runtime: the environment built above, nothing else -------------------------------------
# A fresh base: no source tree, no wheel, no build backend, no binutils, no pip cache.
FROM python:3.11-slim-bookworm

# Logs reach `docker logs` / `mesg-cli service:logs` at once instead of sitting in a buffer.
# The environment's bin/ first: `mesg-pusher` is its console script.
ENV PYTHONUNBUFFERED=1 \
    PATH=/opt/mesg-pusher/bin:$PATH

# An unprivileged system user (fixed uid/gid, no home, no login shell) to run the service.
# --no-log-init: no lastlog/faillog entries, which are sparse files sized by the uid.
RUN useradd --system --user-group --uid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin --no-log-init mesg

# Owned by root: the service user can run it but not change it. The virtual environment's
# python is a link to the base's, which is the same in both stages.
COPY --from=builder /opt/mesg-pusher /opt/mesg-pusher

# The service reads ./mesg.yml (falling back to the copy inside the package). It stays owned by
# root, so the service user can read it but not change it. No .env is copied: settings come
# from the engine's environment.
WORKDIR /app
COPY mesg.yml ./

# Numeric uid:gid, so runtimes that enforce "run as non-root" can verify it without /etc/passwd.
USER 10001:10001

# Exec form: mesg-pusher is PID 1 and receives SIGTERM itself, which lets it finish in-flight
# executions within MESG_PUSHER_GRACE_PERIOD before the engine kills the container.
# ENTRYPOINT is emptied: the base's (none in the official image) must not wrap the service.
ENTRYPOINT []
CMD ["mesg-pusher"]
