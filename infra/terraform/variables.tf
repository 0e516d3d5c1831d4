variable "project_id" {
  description = "Google Cloud project that holds the cluster, the bucket and the images."
  type        = string
}

variable "region" {
  description = "Region of the bucket, the image registry and Dataflow jobs."
  type        = string
  default     = "us-central1"
}

variable "zone" {
  description = "Zone of the (zonal) cluster; pick one that has the GPU type below."
  type        = string
  default     = "us-central1-a"
}

variable "cluster_name" {
  description = "Name of the GKE cluster."
  type        = string
  default     = "optbench"
}

variable "bucket_name" {
  description = "Globally unique name of the artifacts bucket (pipeline root, published runs, Dataflow temp)."
  type        = string
}

variable "kfp_namespace" {
  description = "Namespace Kubeflow Pipelines runs in (infra/kfp installs it there)."
  type        = string
  default     = "kubeflow"
}

variable "cpu_machine_type" {
  description = "Machine type of the CPU pool: KFP itself, ingest, evaluate, report."
  type        = string
  default     = "n2-standard-8"
}

variable "cpu_min_nodes" {
  description = "The CPU pool never shrinks below this: KFP's own services live there."
  type        = number
  default     = 1
}

variable "cpu_max_nodes" {
  description = "Upper bound of the CPU pool's autoscaling."
  type        = number
  default     = 4
}

variable "gpu_type" {
  description = "GKE accelerator type of the GPU pool; `optbench compile --gpu-type` must name the same."
  type        = string
  default     = "nvidia-tesla-t4"
}

variable "gpus_per_node" {
  description = "GPUs attached to each GPU node."
  type        = number
  default     = 1
}

variable "gpu_machine_type" {
  description = "Machine type of the GPU pool (must accept the GPU type: n1 for T4/V100, g2 for L4)."
  type        = string
  default     = "n1-standard-8"
}

variable "gpu_max_nodes" {
  description = "Upper bound of the GPU pool; it scales from zero, so idle GPUs cost nothing."
  type        = number
  default     = 6
}

variable "gpu_spot" {
  description = "Spot GPU nodes: much cheaper, may be preempted (training tasks retry)."
  type        = bool
  default     = true
}

variable "noncurrent_version_days" {
  description = "Days an overwritten or deleted object's old version is kept before it is deleted."
  type        = number
  default     = 30
}

variable "dataflow_temp_days" {
  description = "Days Dataflow's temporary files are kept."
  type        = number
  default     = 7
}

variable "pipeline_root_days" {
  description = "Days the artifacts of a cluster run (datasets, models, TFMA output under pipeline-root/) are kept; every run's record under history/ stays, so histories never lose a run. 0 keeps them forever."
  type        = number
  default     = 90
}

variable "enable_dataflow" {
  description = "Grant what running Beam on Dataflow needs (a worker service account, job creation)."
  type        = bool
  default     = false
}

variable "deletion_protection" {
  description = "Refuse `terraform destroy` of the cluster."
  type        = bool
  default     = true
}
