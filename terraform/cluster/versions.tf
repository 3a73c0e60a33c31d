terraform {
  # Checked with Terraform 1.11.4 (tests/platform/test_60_terraform.sh);
  # validation blocks that name other variables need 1.9 or later.
  required_version = ">= 1.11.0, < 2.0.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # Exactly the provider `terraform validate` checks this stack against.
      version = "= 5.100.0"
    }
  }
}
