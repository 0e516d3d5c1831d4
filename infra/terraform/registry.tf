# The images of containers/Dockerfile: REGION-docker.pkg.dev/PROJECT/optbench/{cpu,gpu}:TAG (make images).
resource "google_artifact_registry_repository" "images" {
  repository_id = "optbench"
  location      = var.region
  format        = "DOCKER"
  description   = "optbench pipeline images"

  depends_on = [google_project_service.apis]
}

resource "google_artifact_registry_repository_iam_member" "nodes_pull" {
  repository = google_artifact_registry_repository.images.name
  location   = google_artifact_registry_repository.images.location
  role       = "roles/artifactregistry.reader"
  member     = google_service_account.nodes.member
}

resource "google_artifact_registry_repository_iam_member" "dataflow_pull" {
  count      = var.enable_dataflow ? 1 : 0
  repository = google_artifact_registry_repository.images.name
  location   = google_artifact_registry_repository.images.location
  role       = "roles/artifactregistry.reader"
  member     = google_service_account.dataflow[0].member
}
