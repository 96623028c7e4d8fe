# Google identities of the in-cluster workloads, through Workload Identity:
# each Google service account below may be impersonated only by one Kubernetes
# service account (roles/iam.workloadIdentityUser on the member
# PROJECT.svc.id.goog[NAMESPACE/KSA]), and holds only the roles its workload
# needs. The Kubernetes service accounts carry the annotation
# iam.gke.io/gcp-service-account=<email> (see the kubernetes_annotations output).
#
# - service:  the inference service, which writes custom metrics and traces.
# - pipeline: the release pipeline, which pushes images to the one repository,
#             reads metrics, edits alert policies and deploys to the cluster.

locals {
  service_member  = "serviceAccount:${google_service_account.service.email}"
  pipeline_member = "serviceAccount:${google_service_account.pipeline.email}"
}

resource "google_service_account" "service" {
  project      = var.project_id
  account_id   = "${var.name}-inference"
  display_name = "inferops inference service (${var.name})"
  description  = "Workload Identity of the Kubernetes service account ${var.namespace}/${var.service_ksa}."
}

resource "google_service_account_iam_member" "service_workload_identity" {
  service_account_id = google_service_account.service.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.workload_pool}[${var.namespace}/${var.service_ksa}]"
}

resource "google_project_iam_member" "service" {
  for_each = toset(var.service_roles)

  project = var.project_id
  role    = each.value
  member  = local.service_member
}

resource "google_service_account" "pipeline" {
  project      = var.project_id
  account_id   = "${var.name}-pipeline"
  display_name = "inferops release pipeline (${var.name})"
  description  = "Workload Identity of the Kubernetes service account ${var.namespace}/${var.pipeline_ksa}."
}

resource "google_service_account_iam_member" "pipeline_workload_identity" {
  service_account_id = google_service_account.pipeline.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.workload_pool}[${var.namespace}/${var.pipeline_ksa}]"
}

resource "google_project_iam_member" "pipeline" {
  for_each = toset(var.pipeline_roles)

  project = var.project_id
  role    = each.value
  member  = local.pipeline_member
}

# Push rights on the environment's repository only, not project-wide.
resource "google_artifact_registry_repository_iam_member" "pipeline_writer" {
  project    = var.project_id
  location   = var.registry_location
  repository = var.registry_repository
  role       = "roles/artifactregistry.writer"
  member     = local.pipeline_member
}
