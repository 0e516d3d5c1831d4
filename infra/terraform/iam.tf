# One Google service account per job to do, each with only that job's rights, bound to the Kubernetes
# service account that needs it through Workload Identity. No service account key is ever created.

# The nodes: pull images, write logs and metrics. Nothing else.
resource "google_service_account" "nodes" {
  account_id   = "optbench-nodes"
  display_name = "optbench GKE nodes"
}

resource "google_project_iam_member" "nodes_default" {
  project = var.project_id
  role    = "roles/container.defaultNodeServiceAccount"
  member  = google_service_account.nodes.member
}

# The pipeline's pods (KFP runs every task as the pipeline-runner Kubernetes service account).
resource "google_service_account" "pipelines" {
  account_id   = "optbench-pipelines"
  display_name = "optbench pipeline tasks"
}

resource "google_service_account_iam_member" "pipelines_workload_identity" {
  service_account_id = google_service_account.pipelines.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${var.kfp_namespace}/pipeline-runner]"
}

# The KFP UI, which shows artifacts straight from the bucket: read only.
resource "google_service_account" "ui" {
  account_id   = "optbench-kfp-ui"
  display_name = "optbench KFP UI"
}

resource "google_service_account_iam_member" "ui_workload_identity" {
  service_account_id = google_service_account.ui.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${var.kfp_namespace}/ml-pipeline-ui]"
}

# Beam on Dataflow (optional): the pipeline's tasks launch jobs that run as this worker account.
resource "google_service_account" "dataflow" {
  count        = var.enable_dataflow ? 1 : 0
  account_id   = "optbench-dataflow"
  display_name = "optbench Dataflow workers"
}

resource "google_project_iam_member" "dataflow_worker" {
  count   = var.enable_dataflow ? 1 : 0
  project = var.project_id
  role    = "roles/dataflow.worker"
  member  = google_service_account.dataflow[0].member
}

resource "google_project_iam_member" "pipelines_launch_dataflow" {
  count   = var.enable_dataflow ? 1 : 0
  project = var.project_id
  role    = "roles/dataflow.developer"
  member  = google_service_account.pipelines.member
}

resource "google_service_account_iam_member" "pipelines_act_as_dataflow" {
  count              = var.enable_dataflow ? 1 : 0
  service_account_id = google_service_account.dataflow[0].name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.pipelines.member
}
