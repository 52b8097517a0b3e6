"""The FastAPI application of the scoring service: :func:`create_app`.

Routes (the issue's output contract):

``POST /v1/score``
    One applicant object, or ``{"applicants": [...]}`` (1 to ``max_batch``); answers
    ``{"results": [{"probability", "score", "decision", "reasons"}], "model": digest}``.
    A body that is not JSON or breaks the schema: 422, ``{"detail": "<first problem>",
    "problems": [{"field", "problem", "type"}]}`` naming every field. A body over the
    size limit: 413, refused by its ``Content-Length`` before it is read, or as soon
    as a chunked body passes the limit.
``GET /v1/model``
    The package: digest, signer fingerprint, run, schema name and hash, model kind and
    encoding, created, cut-off, top-k, and whether drift has a development baseline (or
    why not).
``GET /healthz``
    ``{"status": "ok", "model": digest}`` (open even with an API token).
``GET /metrics``
    Prometheus text format (:mod:`serving.metrics`); compares drift before answering.

The event loop reads and validates requests; scoring runs in a worker thread, the
requests that wait together scored in one call (:mod:`serving.batcher`), so neither a
large batch nor a burst of single applicants holds the loop.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic.json_schema import models_json_schema

from credit.package import ModelPackage
from serving.batcher import Batcher
from serving.errors import ApplicantsRefused
from serving.gate import ServiceGate
from serving.metrics import CONTENT_TYPE
from serving.service import Answer, ScoringService
from serving.settings import ServiceSettings

__all__ = ["create_app"]

logger = logging.getLogger("fedcredit.serve")

_JSON = "application/json"


class BodyTooLarge(Exception):
    """The request body passed the size limit."""


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused as soon as it passes ``limit`` bytes.

    Raises
    ------
    BodyTooLarge
        ``Content-Length`` (or the bytes received so far) over ``limit``.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _json(document: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(document, separators=(",", ":")), status_code=status, media_type=_JSON
    )


def _add_score(app: FastAPI, service: ScoringService) -> None:
    limit = service.settings.max_body_bytes
    batcher: Batcher[Answer] = Batcher(service.score_many, max_rows=service.settings.max_batch)

    async def score(request: Request) -> Response:
        started = time.perf_counter()
        request_id: str = request.state.request_id
        try:
            body = await read_body(request, limit)
        except BodyTooLarge:
            service.log.refused(
                request_id=request_id, status=413, latency=time.perf_counter() - started
            )
            return _json({"detail": f"request body over {limit:,} bytes"}, 413)
        try:
            applicants = service.parse(body)
        except ApplicantsRefused as refused:
            problems = [
                (service.metrics.field(p.feature, p.path), p.kind) for p in refused.problems
            ]
            service.log.refused(
                request_id=request_id,
                status=422,
                latency=time.perf_counter() - started,
                problems=problems,
            )
            return _json(
                {"detail": str(refused), "problems": [p.document() for p in refused.problems]},
                422,
            )
        try:
            answer = await batcher.submit(applicants)
        except Exception as exc:  # a scorer failure on validated rows: a defect, no data
            logger.error(
                "request %s: scoring failed (%s); its rows passed validation, so this is "
                "a defect: report it with the package digest",
                request_id,
                type(exc).__name__,
            )  # the exception's text may quote an applicant's value: not logged
            service.log.refused(
                request_id=request_id, status=500, latency=time.perf_counter() - started
            )
            return _json({"detail": f"scoring failed (request {request_id})"}, 500)
        service.log.scored(
            request_id=request_id,
            decisions=answer.decisions,
            scores=answer.scores,
            latency=time.perf_counter() - started,
            applicants=applicants,
        )
        return _json(answer.document)

    app.add_api_route(
        "/v1/score",
        score,
        methods=["POST"],
        summary="Score one applicant or a small batch",
        response_class=JSONResponse,
        responses={
            200: {"description": "Probability, score, decision and reasons per applicant"},
            413: {"description": "Request body over the size limit"},
            422: {"description": "The body is not JSON or breaks the schema (fields named)"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    _JSON: {
                        "schema": {
                            "anyOf": [
                                {"$ref": "#/components/schemas/Applicant"},
                                {"$ref": "#/components/schemas/ApplicantBatch"},
                            ]
                        }
                    }
                },
            }
        },
    )


def _add_reads(app: FastAPI, service: ScoringService) -> None:
    model_document = service.model_document()
    health = {"status": "ok", "model": service.package.digest}

    async def model() -> Response:
        return _json(model_document)

    async def healthz() -> Response:
        return _json(health)

    def metrics() -> Response:  # a thread: the drift comparison takes milliseconds
        service.check_drift()
        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE)

    app.add_api_route("/v1/model", model, methods=["GET"], summary="The model package in use")
    app.add_api_route("/healthz", healthz, methods=["GET"], summary="Liveness")
    app.add_api_route("/metrics", metrics, methods=["GET"], summary="Prometheus metrics")


def _openapi(app: FastAPI, service: ScoringService) -> dict[str, Any]:
    """FastAPI's document with the schema-generated applicant models as components."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        _, definitions = models_json_schema(
            [(service.form.applicant, "validation"), (service.form.batch, "validation")],
            ref_template="#/components/schemas/{model}",
        )
        document.setdefault("components", {}).setdefault("schemas", {}).update(
            definitions.get("$defs", {})
        )
        app.openapi_schema = document
    return app.openapi_schema


def create_app(package: ModelPackage, settings: ServiceSettings) -> FastAPI:
    """The service's application for a verified package.

    Parameters
    ----------
    package : ModelPackage
        A package loaded (and so verified) by :func:`credit.package.load_package`.
    settings : ServiceSettings
        Cut-off, limits, token, log and drift settings (TLS is the server's:
        :func:`serving.runner.uvicorn_config`).

    Returns
    -------
    fastapi.FastAPI
        The application; ``app.state.service`` is its :class:`ScoringService`.
    """
    service = ScoringService(package, settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The process's objects so far (torch, pandas, the package: some 260,000) are
        # never scanned again: a full garbage collection of them took 130 ms, the tail
        # latency of every request it interrupted.
        gc.collect()
        gc.freeze()
        yield
        gc.unfreeze()
        service.close()

    app = FastAPI(  # no /docs or /redoc: FastAPI loads their scripts from a CDN
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        title="fedcredit scoring service",
        version=package.digest[:12],
        description=(
            f"Scores applicants of schema '{package.schema.name}' with the signed model "
            f"package {package.digest} (run {package.manifest.run})."
        ),
    )
    app.state.service = service
    _add_score(app, service)
    _add_reads(app, service)
    app.openapi = lambda: _openapi(app, service)  # type: ignore[method-assign]
    app.add_middleware(ServiceGate, metrics=service.metrics, token=settings.token)
    return app
