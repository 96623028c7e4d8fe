output "service_account_email" {
  description = "Email of the inference service's Google service account."
  value       = google_service_account.service.email
}

output "pipeline_account_email" {
  description = "Email of the release pipeline's Google service account."
  value       = google_service_account.pipeline.email
}

output "kubernetes_annotations" {
  description = "Annotations each Kubernetes service account (NAMESPACE/NAME) needs to act as its Google service account."
  value = {
    "${var.namespace}/${var.service_ksa}" = {
      "iam.gke.io/gcp-service-account" = google_service_account.service.email
    }
    "${var.namespace}/${var.pipeline_ksa}" = {
      "iam.gke.io/gcp-service-account" = google_service_account.pipeline.email
    }
  }
}
