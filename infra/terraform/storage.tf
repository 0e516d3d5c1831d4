# The artifacts bucket: KFP's pipeline root, published runs (optbench run --publish) and Dataflow's temp files.
#   gs://BUCKET/pipeline-root/   KFP artifacts of cluster runs
#   gs://BUCKET/runs/            published runs: <suite>/<run_id>/{data,models,eval,report,_COMPLETE}
#   gs://BUCKET/dataflow-tmp/    Beam on Dataflow
resource "google_storage_bucket" "artifacts" {
  name                        = var.bucket_name
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  # Versioning guards against an overwrite or a delete by mistake; old versions go after a while.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_days
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      age            = var.dataflow_temp_days
      matches_prefix = ["dataflow-tmp/"]
    }
    action {
      type = "Delete"
    }
  }

  # What `optbench runs --prune` does to a folder of runs, by age: a cluster run's bulk goes, its record (under
  # history/, read by every later run's history and "what changed") stays.
  dynamic "lifecycle_rule" {
    for_each = var.pipeline_root_days > 0 ? [var.pipeline_root_days] : []
    content {
      condition {
        age            = lifecycle_rule.value
        matches_prefix = ["pipeline-root/"]
      }
      action {
        type = "Delete"
      }
    }
  }

  depends_on = [google_project_service.apis]
}

# Bucket-level grants only: nobody here gets storage rights on the whole project.
resource "google_storage_bucket_iam_member" "pipelines_objects" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectUser"
  member = google_service_account.pipelines.member
}

resource "google_storage_bucket_iam_member" "ui_reads_objects" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.ui.member
}

resource "google_storage_bucket_iam_member" "dataflow_objects" {
  count  = var.enable_dataflow ? 1 : 0
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectUser"
  member = google_service_account.dataflow[0].member
}
