terraform {
  required_version = ">= 1.11.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "= 5.100.0"
    }
    helm = {
      source = "hashicorp/helm"
      # 3.x: `kubernetes` and `exec` are attributes (= { ... }), not blocks.
      version = "= 3.0.2"
    }
  }
}
