"""Plans of the paper-scale recipes (dry runs): memory, time and parameter counts per device count."""
