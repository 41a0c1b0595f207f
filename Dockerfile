# syntax=docker/dockerfile:1.7
# The one runtime image every xtrc stage runs in (entrypoint: xtrc-runtime).
#
#   GPU (default, CUDA runtime base):  docker build -t xtrc-runtime:0.1.0 .
#   CPU (kind, tests):                 docker build --build-arg VARIANT=cpu -t xtrc-runtime:0.1.0-cpu .
#
# Python comes from uv's standalone builds, so both variants share every layer above the base
# and neither needs apt. Dependencies are installed before the code, so a code change
# rebuilds only the last, small layer.
ARG VARIANT=cuda

FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 AS base-cuda
ENV TORCH_INDEX=https://download.pytorch.org/whl/cu128

FROM ubuntu:24.04 AS base-cpu
ENV TORCH_INDEX=https://download.pytorch.org/whl/cpu

# base-${VARIANT} names one of the two pinned stages above, which hadolint cannot see through.
# hadolint ignore=DL3006
FROM base-${VARIANT} AS runtime
ARG PYTHON_VERSION=3.11
ARG TORCH_VERSION=2.13.0
COPY --from=ghcr.io/astral-sh/uv:0.9.5 /uv /usr/local/bin/uv
ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1
# Where the runtime writes: the pod mounts its scratch emptyDir at /tmp and /home/xtrc and sets the
# same variables (POD_ENV in compiler/render.py); here they serve `docker run` too.
ENV HOME=/home/xtrc \
    TMPDIR=/tmp \
    XDG_CACHE_HOME=/home/xtrc/.cache \
    XDG_CONFIG_HOME=/home/xtrc/.config \
    HF_HOME=/home/xtrc/.cache/huggingface \
    TRITON_CACHE_DIR=/home/xtrc/.cache/triton \
    TORCHINDUCTOR_CACHE_DIR=/tmp/torchinductor \
    MPLCONFIGDIR=/home/xtrc/.config/matplotlib
RUN uv venv --python "${PYTHON_VERSION}" /opt/venv \
 && uv pip install --index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}"

WORKDIR /opt/xtrc
# Dependencies (pinned by constraints.txt: the versions the test suite ran with), then the code.
COPY pyproject.toml README.md constraints.txt ./
RUN uv pip install -r pyproject.toml --extra runtime -c constraints.txt
COPY compiler ./compiler
COPY runtime ./runtime
COPY charts ./charts
# uid/gid 10001, as the pods' securityContext (POD_UID in compiler/render.py): above 10000, no host user.
RUN uv pip install --no-deps . \
 && groupadd --gid 10001 xtrc \
 && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/xtrc xtrc

USER 10001:10001
ENTRYPOINT ["xtrc-runtime"]
CMD ["--help"]
