variable "region" {
  description = "AWS region of the cluster (the cluster stack's `region` output)."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as us-east-1 or eu-central-1."
  }
}

variable "cluster_name" {
  description = "Name of the EKS cluster made by terraform/cluster (its `cluster_name` output); read with a data source."
  type        = string
  default     = "ai-finops"

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{0,31}$", var.cluster_name))
    error_message = "cluster_name must start with a letter and hold 1-32 letters, digits or hyphens."
  }
}

variable "exporter_image_repository" {
  description = "Repository of the ai-finops-exporter image built from the project's Dockerfile and pushed by you, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/ai-finops-exporter (no tag)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9._/-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9._-]+)*$", var.exporter_image_repository)) && !can(regex(":[^/]*[a-zA-Z][^/]*$", var.exporter_image_repository))
    error_message = "exporter_image_repository must be an image repository without a tag (put the tag in exporter_image_tag)."
  }
}

variable "exporter_image_tag" {
  description = "Tag of the exporter image."
  type        = string
  default     = "0.1.0"

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.exporter_image_tag))
    error_message = "exporter_image_tag must be a valid image tag (letters, digits, _ . -, at most 128)."
  }
}
