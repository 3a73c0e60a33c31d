# tflint configuration of the platform stack: the ruleset bundled with tflint
# (no `tflint --init`, nothing downloaded), its recommended preset, plus the
# naming and documentation rules.
config {
  call_module_type = "none"
}

plugin "terraform" {
  enabled = true
  preset  = "recommended"
}

rule "terraform_documented_variables" {
  enabled = true
}

rule "terraform_documented_outputs" {
  enabled = true
}

rule "terraform_naming_convention" {
  enabled = true
}

rule "terraform_standard_module_structure" {
  enabled = true
}
