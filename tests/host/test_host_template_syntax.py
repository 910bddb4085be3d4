"""The test parser must be as strict as monitord, or the probe tests prove nothing."""

import pytest
from one_template import TemplateSyntaxError, as_dict, parse_template


def test_accepts_what_stock_probes_print():
    text = ('HYPERVISOR=kvm\nTOTALMEMORY = 24684092\nMODELNAME="AMD EPYC 7R13"\n'
            '# comment\nVM = [ ID="5", DEPLOY_ID="abc", MONITOR="Q0w=" ]\n'
            'PCI=[ADDRESS="0000:00:02.0",\n  CLASS="0300"]\n')
    attributes = parse_template(text)
    assert as_dict(attributes[:3]) == {"HYPERVISOR": "kvm", "TOTALMEMORY": "24684092",
                                       "MODELNAME": "AMD EPYC 7R13"}
    assert attributes[3] == ("VM", {"ID": "5", "DEPLOY_ID": "abc", "MONITOR": "Q0w="})
    assert attributes[4] == ("PCI", {"ADDRESS": "0000:00:02.0", "CLASS": "0300"})


def test_escaped_quote_round_trips():
    assert parse_template('K="a \\"b\\" c"') == [("K", 'a "b" c')]


@pytest.mark.parametrize("bad", [
    "K=a b",                      # unquoted value with a space
    'K="unterminated',
    "K=[ A=1",                    # unclosed vector
    "K=[ A=1 B=2 ]",              # missing comma
    "=5",
    "K",
    'VM=[ ID="1" ] trailing',
    "K-X=1",
])
def test_rejects_what_monitord_rejects(bad):
    with pytest.raises(TemplateSyntaxError):
        parse_template(bad)
