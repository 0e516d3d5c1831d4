output "get_credentials" {
  description = "The command that points kubectl at the cluster."
  value       = "gcloud container clusters get-credentials ${google_container_cluster.optbench.name} --zone ${var.zone} --project ${var.project_id}"
}

output "registry" {
  description = "Where `make images REGISTRY=...` pushes the images."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "pipeline_root" {
  description = "KFP's pipeline root: the artifacts of every cluster run."
  value       = "gs://${google_storage_bucket.artifacts.name}/pipeline-root"
}

output "publish_root" {
  description = "Where `optbench run --publish` puts local runs."
  value       = "gs://${google_storage_bucket.artifacts.name}/runs"
}

# infra/kfp/params.env: terraform output -raw kfp_params > infra/kfp/params.env
output "kfp_params" {
  description = "The values infra/kfp's kustomize overlay substitutes (pipeline root, Workload Identity accounts)."
  value       = <<-EOT
    pipelineRoot=gs://${google_storage_bucket.artifacts.name}/pipeline-root
    pipelineRunnerServiceAccount=${google_service_account.pipelines.email}
    uiServiceAccount=${google_service_account.ui.email}
  EOT
}

# cluster.yaml for `optbench ... --config`: terraform output -raw optbench_config > cluster.yaml
output "optbench_config" {
  description = "Defaults for optbench's cluster commands; add image: and gpu_image: after make images."
  value = yamlencode(merge(
    {
      gpu_type       = var.gpu_type
      gpus           = var.gpus_per_node
      pipeline_root  = "gs://${google_storage_bucket.artifacts.name}/pipeline-root"
      artifacts_root = "gs://${google_storage_bucket.artifacts.name}/runs"
      history_root   = "gs://${google_storage_bucket.artifacts.name}/history"
    },
    var.enable_dataflow ? {
      dataflow_project         = var.project_id
      dataflow_region          = var.region
      dataflow_temp_location   = "gs://${google_storage_bucket.artifacts.name}/dataflow-tmp"
      dataflow_service_account = google_service_account.dataflow[0].email
    } : {},
  ))
}
