"""Exception hierarchy: every failure cloudvamp reports is a CloudvampError."""


class CloudvampError(Exception):
    """Base of every error cloudvamp raises on purpose."""


class ConfigError(CloudvampError):
    """A configuration value or policy parameter is invalid; names the key."""


class PolicyError(CloudvampError):
    """A policy cannot decide with the inputs it was given."""


class AdapterError(CloudvampError):
    """An outside system (oned, libvirt, OneGate) failed or answered nonsense."""


class ActionSkipped(CloudvampError):
    """The world changed since planning; the action no longer applies."""


class ActionFailed(CloudvampError):
    """An action was attempted and the outside system refused or failed it."""
