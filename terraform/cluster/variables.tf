variable "region" {
  description = "AWS region of the VPC and the cluster, e.g. us-east-1."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as us-east-1 or eu-central-1."
  }
}

variable "cluster_name" {
  description = "Name of the EKS cluster; also the prefix of the VPC, IAM roles, KMS alias and log group. The platform stack finds the cluster by this name."
  type        = string
  default     = "ai-finops"

  validation {
    # IAM role names are at most 64 characters; the longest suffix used is 22.
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{0,31}$", var.cluster_name))
    error_message = "cluster_name must start with a letter and hold 1-32 letters, digits or hyphens."
  }
}

variable "kubernetes_version" {
  description = "Kubernetes version of the control plane and the node groups."
  type        = string
  default     = "1.33"

  validation {
    # The add-on versions (var.addon_versions) are pinned for this release.
    condition     = var.kubernetes_version == "1.33"
    error_message = "kubernetes_version must be 1.33, the release the pinned add-on versions are built for; change both together."
  }
}

variable "addon_versions" {
  description = "Pinned versions of the EKS add-ons (`aws eks describe-addon-versions --kubernetes-version 1.33 --addon-name NAME` lists the available ones)."
  type = object({
    vpc_cni            = string
    kube_proxy         = string
    coredns            = string
    pod_identity_agent = string
    ebs_csi_driver     = string
  })
  default = {
    vpc_cni            = "v1.19.5-eksbuild.1"
    kube_proxy         = "v1.33.0-eksbuild.2"
    coredns            = "v1.12.1-eksbuild.2"
    pod_identity_agent = "v1.3.8-eksbuild.2"
    ebs_csi_driver     = "v1.48.0-eksbuild.1"
  }

  validation {
    condition     = alltrue([for v in values(var.addon_versions) : can(regex("^v[0-9]+\\.[0-9]+\\.[0-9]+-eksbuild\\.[0-9]+$", v))])
    error_message = "Each add-on version must look like v1.2.3-eksbuild.4."
  }
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC. Three quarters go to the private (node and pod) subnets, the last quarter holds the public subnets."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition = (
      can(cidrhost(var.vpc_cidr, 0)) &&
      try(tonumber(split("/", var.vpc_cidr)[1]) >= 16 && tonumber(split("/", var.vpc_cidr)[1]) <= 20, false)
    )
    error_message = "vpc_cidr must be an IPv4 CIDR block from /16 to /20 (pods take VPC addresses with the VPC CNI)."
  }
}

variable "az_count" {
  description = "Number of availability zones: one private and one public subnet in each. Three lets the three Kafka brokers sit in three zones."
  type        = number
  default     = 3

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 3 && floor(var.az_count) == var.az_count
    error_message = "az_count must be 2 or 3 (EKS needs subnets in at least two zones)."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all private subnets (cheaper; the nodes lose egress while its zone is down) instead of one per zone."
  type        = bool
  default     = true
}

variable "endpoint_public_access_cidrs" {
  description = "Networks allowed to reach the public Kubernetes API endpoint (where Terraform and kubectl run). Nodes use the private endpoint."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = length(var.endpoint_public_access_cidrs) > 0 && alltrue([for c in var.endpoint_public_access_cidrs : can(cidrhost(c, 0))])
    error_message = "endpoint_public_access_cidrs must be a non-empty list of IPv4 CIDR blocks."
  }
}

variable "cluster_admin_arns" {
  description = "IAM roles or users given cluster-admin through EKS access entries, besides the identity that creates the cluster (which gets it from bootstrap_cluster_creator_admin_permissions). Do not list the creator again."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.cluster_admin_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/.+$", a))])
    error_message = "cluster_admin_arns must hold IAM role or user ARNs (arn:aws:iam::123456789012:role/NAME)."
  }
}

variable "node_instance_types" {
  description = "Instance types of the general node group (the first one that has capacity is used). The default fits three Kafka brokers (2 GiB each), the operators, Prometheus, Grafana, OpenCost and the exporter; see terraform/README.md."
  type        = list(string)
  default     = ["m6i.large"]

  validation {
    condition     = length(var.node_instance_types) > 0 && alltrue([for t in var.node_instance_types : can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", t))])
    error_message = "node_instance_types must be a non-empty list of EC2 instance types such as m6i.large."
  }
}

variable "node_min_size" {
  description = "Minimum number of general nodes."
  type        = number
  default     = 3

  validation {
    condition     = var.node_min_size >= 1 && floor(var.node_min_size) == var.node_min_size
    error_message = "node_min_size must be a whole number of at least 1."
  }
}

variable "node_desired_size" {
  description = "Number of general nodes to start with (one per Kafka broker)."
  type        = number
  default     = 3

  validation {
    condition     = var.node_desired_size >= var.node_min_size && var.node_desired_size <= var.node_max_size
    error_message = "node_desired_size must lie between node_min_size and node_max_size."
  }
}

variable "node_max_size" {
  description = "Maximum number of general nodes."
  type        = number
  default     = 4

  validation {
    condition     = var.node_max_size >= var.node_min_size && var.node_max_size <= 100
    error_message = "node_max_size must be at least node_min_size and at most 100."
  }
}

variable "node_disk_size_gib" {
  description = "Root volume (gp3, encrypted) of each node, GiB: images, logs and emptyDir volumes. Kafka data lives on its own EBS volumes."
  type        = number
  default     = 50

  validation {
    condition     = var.node_disk_size_gib >= 20 && var.node_disk_size_gib <= 1000
    error_message = "node_disk_size_gib must be between 20 and 1000."
  }
}

variable "gpu_node_group" {
  description = "Optional GPU node group (off by default): NVIDIA AL2023 AMI, tainted nvidia.com/gpu=true:NoSchedule so only pods that tolerate it land there. The NVIDIA device plugin is not installed by these stacks."
  type = object({
    enabled        = optional(bool, false)
    instance_types = optional(list(string), ["g6.xlarge"])
    min_size       = optional(number, 0)
    desired_size   = optional(number, 1)
    max_size       = optional(number, 2)
  })
  default = {}

  validation {
    condition = (
      var.gpu_node_group.min_size >= 0 &&
      var.gpu_node_group.min_size <= var.gpu_node_group.desired_size &&
      var.gpu_node_group.desired_size <= var.gpu_node_group.max_size &&
      var.gpu_node_group.max_size >= 1
    )
    error_message = "gpu_node_group needs 0 <= min_size <= desired_size <= max_size and max_size >= 1."
  }

  validation {
    condition     = length(var.gpu_node_group.instance_types) > 0 && alltrue([for t in var.gpu_node_group.instance_types : can(regex("^(g|p)[0-9][a-z0-9-]*\\.[a-z0-9]+$", t))])
    error_message = "gpu_node_group.instance_types must be GPU instance types (g*/p* families) such as g6.xlarge."
  }
}

variable "cluster_log_retention_days" {
  description = "Retention of the control-plane logs (api, audit, authenticator) in CloudWatch, days."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.cluster_log_retention_days)
    error_message = "cluster_log_retention_days must be one of CloudWatch's retention values (1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}

variable "tags" {
  description = "Tags put on every resource (through the provider's default_tags)."
  type        = map(string)
  default = {
    Project = "ai-finops-exporter"
  }

  validation {
    condition     = alltrue([for k, v in var.tags : !startswith(lower(k), "aws:") && length(k) <= 128 && length(v) <= 256])
    error_message = "Tag keys must not start with aws: and must be at most 128 characters; values at most 256."
  }
}
