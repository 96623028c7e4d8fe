# Each component of the local environment is recorded as one terraform_data
# resource: its input is the component's address and folders, derived from the
# variables, and its output is what the platform code reads back.

locals {
  host = "127.0.0.1"
}

resource "terraform_data" "redis" {
  input = {
    host = local.host
    port = var.base_port + 79
    dir  = "${var.state_dir}/redis"
  }
}

resource "terraform_data" "prometheus" {
  input = {
    host            = local.host
    port            = var.base_port + 90
    dir             = "${var.state_dir}/prometheus"
    scrape_interval = "1s"
  }
}

resource "terraform_data" "router" {
  input = {
    kind = "nginx"
    host = local.host
    port = var.base_port + 80
    dir  = "${var.state_dir}/nginx"
  }
}

resource "terraform_data" "prefect" {
  input = {
    host = local.host
    port = var.base_port + 42
    home = "${var.state_dir}/prefect"
  }
}

# Each service instance takes two ports from this range: one for its API and
# one for its metrics.
resource "terraform_data" "services" {
  input = {
    host            = local.host
    port_start      = var.base_port + 100
    port_end        = var.base_port + 199
    stable_replicas = var.stable_replicas
    canary_replicas = var.canary_replicas
  }
}

resource "terraform_data" "gitops" {
  input = {
    remote  = "${var.state_dir}/gitops.git"
    workdir = "${var.state_dir}/gitops-work"
    branch  = "main"
    path    = "environments/${var.environment}"
  }
}

resource "terraform_data" "images" {
  input = {
    dir = "${var.state_dir}/images"
  }
}
