resource "google_project_service" "apis" {
  for_each = toset(concat(
    ["container.googleapis.com", "artifactregistry.googleapis.com", "storage.googleapis.com", "iam.googleapis.com"],
    var.enable_dataflow ? ["dataflow.googleapis.com"] : [],
  ))

  service            = each.value
  disable_on_destroy = false
}
