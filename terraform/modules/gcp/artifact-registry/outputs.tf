output "repository_id" {
  description = "ID (name) of the repository."
  value       = google_artifact_registry_repository.this.repository_id
}

output "repository_name" {
  description = "Full resource name of the repository (projects/PROJECT/locations/REGION/repositories/ID)."
  value       = google_artifact_registry_repository.this.id
}

output "location" {
  description = "Region of the repository."
  value       = google_artifact_registry_repository.this.location
}

output "url" {
  description = "Docker address of the repository: REGION-docker.pkg.dev/PROJECT/REPOSITORY; images are pushed as URL/IMAGE:TAG."
  value       = "${google_artifact_registry_repository.this.location}-docker.pkg.dev/${google_artifact_registry_repository.this.project}/${google_artifact_registry_repository.this.repository_id}"
}
