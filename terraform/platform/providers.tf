# The cluster already exists when this stack runs (terraform/cluster applied
# first), so the Helm provider's connection is known at plan time: no
# -target, no second apply. Tokens come from `aws eks get-token` at each
# call (exec), so they never expire in the middle of a long apply and never
# land in the state.

provider "aws" {
  region = var.region
}

data "aws_eks_cluster" "this" {
  name = var.cluster_name
}

provider "helm" {
  kubernetes = {
    host                   = data.aws_eks_cluster.this.endpoint
    cluster_ca_certificate = base64decode(data.aws_eks_cluster.this.certificate_authority[0].data)
    exec = {
      api_version = "client.authentication.k8s.io/v1beta1"
      command     = "aws"
      args        = ["eks", "get-token", "--cluster-name", data.aws_eks_cluster.this.name, "--region", var.region, "--output", "json"]
    }
  }
}
