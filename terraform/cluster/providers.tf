provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, { "ai-finops/cluster" = var.cluster_name })
  }
}
