# The nodes' own identity. Workloads do not use it (Workload Identity gives
# each Kubernetes service account its own Google identity); it only needs to
# write logs and metrics, read monitoring data for the autoscalers and pull
# images (the registry grants that on its repository).

resource "google_service_account" "nodes" {
  project      = var.project_id
  account_id   = "${var.name}-gke-nodes"
  display_name = "GKE nodes of ${var.name}"
  description  = "Least-privilege identity of the ${var.name} GKE nodes: logs, metrics, resource metadata."
}

resource "google_project_iam_member" "nodes" {
  for_each = toset(var.node_service_account_roles)

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.nodes.email}"
}
