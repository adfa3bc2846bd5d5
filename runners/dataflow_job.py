"""An offline description of a Dataflow job, for ``--dry-run --job-file``.

Google Cloud is not reachable from every machine kappa runs on (nor from its CI), so
a Dataflow job is built the whole way Beam builds it before submission (pipeline
proto, graph validation, Docker environments, kappa staged as an sdist) and then
described here instead of sent: the job's name and type, the options that decide
where and how it runs, every transform, and each environment's image and staged
files. A broken graph or a missing option fails while building, before a submit.
"""

from __future__ import annotations

import hashlib
import json

from apache_beam.options.pipeline_options import GoogleCloudOptions, StandardOptions, WorkerOptions
from apache_beam.portability import common_urns
from apache_beam.portability.api import beam_runner_api_pb2

__all__ = ["describe_job", "job_json"]

_OPTIONS = {
    GoogleCloudOptions: ("project", "region", "job_name", "temp_location", "staging_location",
                         "enable_streaming_engine", "service_account_email"),
    WorkerOptions: ("num_workers", "max_num_workers", "autoscaling_algorithm", "machine_type", "disk_size_gb",
                    "network", "subnetwork", "sdk_container_image"),
    StandardOptions: ("runner", "streaming"),
}


def describe_job(job) -> dict:
    """``job`` is the ``apiclient.Job`` a DataflowRunner dry run returns (``result.job``)."""
    options = {}
    for view, names in _OPTIONS.items():
        values = job.options.view_as(view)
        options.update({name: getattr(values, name) for name in names if getattr(values, name) is not None})
    pipeline = job.proto_pipeline
    return {
        "name": job.proto.name,
        "type": "JOB_TYPE_STREAMING" if job.options.view_as(StandardOptions).streaming else "JOB_TYPE_BATCH",
        "options": options,
        "transforms": sorted(t.unique_name for t in pipeline.components.transforms.values()
                             if t.unique_name and not t.subtransforms),
        "environments": {env_id: _environment(env) for env_id, env in pipeline.components.environments.items()},
        "pipeline_proto_sha256": hashlib.sha256(pipeline.SerializeToString()).hexdigest(),
    }


def _environment(env) -> dict:
    out = {"urn": env.urn}
    if env.urn == common_urns.environments.DOCKER.urn:
        out["image"] = beam_runner_api_pb2.DockerPayload.FromString(env.payload).container_image
    staged = []
    for dep in env.dependencies:
        if dep.role_urn == common_urns.artifact_roles.STAGING_TO.urn:
            staged.append(beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(dep.role_payload).staged_name)
    out["staged_files"] = sorted(staged)
    return out


def job_json(job) -> str:
    return json.dumps(describe_job(job), indent=2, default=str)
