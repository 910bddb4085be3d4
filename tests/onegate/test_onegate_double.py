"""The OneGate double answers like onegate-server (src/onegate/onegate-server.rb, 6.x/7.x)."""

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.doubles.onegate import (OneGateDouble, VmNotFound, parse_template_attrs,
                                   running_onegate_double)

VM_ID = 42


def call(onegate, method="PUT", path="/vm", body=b"", token=None, vm_id=VM_ID,
         content_type="application/x-www-form-urlencoded", query=""):
    headers = {"Content-Type": content_type}
    if token is not False:
        headers["X-ONEGATE-TOKEN"] = token if token is not None else onegate.token_for(VM_ID)
    if vm_id is not None:
        headers["X-ONEGATE-VMID"] = str(vm_id)
    url = onegate.endpoint + path + ("?" + query if query else "")
    request = urllib.request.Request(url, data=body if method != "GET" else None,
                                     method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode(), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), error.headers


def form(**fields):
    return urllib.parse.urlencode(fields).encode()


def test_form_body_merges_into_user_template(onegate):
    status, text, headers = call(onegate, body=form(data="CLOUDVAMP_SEQ=1\nCLOUDVAMP_TIME=9"))
    assert (status, text) == (200, "")
    assert headers["Content-Type"].startswith("application/json")
    assert onegate.user_templates.get(VM_ID) == {"CLOUDVAMP_SEQ": "1", "CLOUDVAMP_TIME": "9"}
    status, _, _ = call(onegate, body=form(data="CLOUDVAMP_SEQ=2"))
    assert onegate.user_templates.get(VM_ID) == {"CLOUDVAMP_SEQ": "2", "CLOUDVAMP_TIME": "9"}


def test_raw_body_merges_too(onegate):
    status, _, _ = call(onegate, body=b"\nMEM_TOTAL = 1024\nMEM_FREE = \"512\"\n",
                        content_type="text/plain")
    assert status == 200
    assert onegate.user_templates.get(VM_ID) == {"MEM_TOTAL": "1024", "MEM_FREE": "512"}
    assert onegate.requests[-1].body_form == "raw"


def test_raw_body_sent_as_form_content_type_still_works(onegate):
    # curl -d sends x-www-form-urlencoded; with no `data` field the raw body is used.
    status, _, _ = call(onegate, body=b"A=1\nB=2")
    assert status == 200
    assert onegate.user_templates.get(VM_ID) == {"A": "1", "B": "2"}


def test_data_in_query_string(onegate):
    status, _, _ = call(onegate, query=urllib.parse.urlencode({"data": "Q=1"}))
    assert status == 200 and onegate.user_templates.get(VM_ID) == {"Q": "1"}


def test_type_2_deletes(onegate):
    call(onegate, body=form(data="A=1\nB=2"))
    status, text, _ = call(onegate, body=form(data="A", type="2"))
    assert (status, text) == (200, "")
    assert onegate.user_templates.get(VM_ID) == {"B": "2"}
    status, text, _ = call(onegate, body=form(data="A", type="2"))
    assert (status, text) == (500, "attribute not found")


@pytest.mark.parametrize("token, vm_id", [
    (False, VM_ID),           # no X-ONEGATE-TOKEN
    (None, None),             # no X-ONEGATE-VMID
    ("wrong", VM_ID),
    (None, 43),               # right token, other VM
    (None, "forty-two"),
])
def test_authentication_failures_are_401(onegate, token, vm_id):
    status, text, _ = call(onegate, body=form(data="A=1"), token=token, vm_id=vm_id)
    assert (status, text) == (401, "Not authorized")
    assert onegate.user_templates.get(VM_ID) == {}
    assert onegate.requests[-1].token_matched is False


def test_vm_gone_after_auth_is_404(onegate):
    onegate.user_templates.remove_vm(VM_ID)
    status, text, _ = call(onegate, body=form(data="A=1"))
    assert status == 404
    assert text == "[one.vm.info] Error getting virtual machine [42]."


def test_restricted_attributes_are_403(onegate):
    status, text, _ = call(onegate, body=form(data="A=1\nSERVICE_ID=7"))
    assert (status, text) == (403, "Attribute (SERVICE_ID) cannot be modified")
    status, text, _ = call(onegate, body=form(data="SCHED_REQUIREMENTS", type="2"))
    assert (status, text) == (403, "Attribute (SCHED_REQUIREMENTS) cannot be deleted")
    assert onegate.user_templates.get(VM_ID) == {}


def test_update_permission_off_is_403(fake_proc):
    with running_onegate_double(permissions={"vm": {"show": True}}) as onegate:
        onegate.register_vm(VM_ID)
        status, text, _ = call(onegate, body=form(data="A=1"))
    assert (status, text) == (403, "Action (update) on resource (vm) not supported")


def test_unparsable_template_is_500(onegate):
    status, text, _ = call(onegate, body=form(data="no equals sign here"))
    assert status == 500 and "Error parsing" in text


def test_get_vm(onegate):
    call(onegate, body=form(data="CLOUDVAMP_SEQ=3"))
    status, text, _ = call(onegate, method="GET")
    assert status == 200
    document = json.loads(text)
    assert document["VM"]["ID"] == "42"
    assert document["VM"]["USER_TEMPLATE"] == {"CLOUDVAMP_SEQ": "3"}
    assert call(onegate, method="GET", token="wrong")[0] == 401


def test_unknown_route_is_404(onegate):
    assert call(onegate, path="/service")[0] == 404


def test_pluggable_sink_receives_the_attributes():
    merged, deleted = [], []

    def merge_user_template(vm_id, attrs):
        merged.append((vm_id, dict(attrs)))

    def delete_user_template_attr(vm_id, name):
        deleted.append((vm_id, name))
        return True

    with OneGateDouble(merge_user_template=merge_user_template,
                       delete_user_template_attr=delete_user_template_attr,
                       read_user_template=lambda vm_id: {}) as onegate:
        onegate.register_vm(7, token="fixed-token")
        assert onegate.publisher_env(7)["TOKENTXT"] == "fixed-token"
        status, _, _ = call(onegate, body=form(data="k=v"), token="fixed-token", vm_id=7)
        assert status == 200
        call(onegate, body=form(data="K", type="2"), token="fixed-token", vm_id=7)
    assert merged == [(7, {"K": "v"})]  # names upper-cased, as oned does
    assert deleted == [(7, "K")]


def test_sink_errors_map_to_404_and_500():
    def vanished(vm_id, attrs):
        raise VmNotFound("[one.vm.info] Error getting virtual machine [%d]." % vm_id)

    def broken(vm_id, attrs):
        raise RuntimeError("[one.vm.update] database is locked")

    for sink, expected in ((vanished, 404), (broken, 500)):
        with OneGateDouble(merge_user_template=sink) as onegate:
            onegate.register_vm(VM_ID)
            status, text, _ = call(onegate, body=form(data="A=1"))
        assert status == expected, text


def test_injected_failures_then_recovery(onegate):
    onegate.fail_next(2, status=503)
    statuses = [call(onegate, body=form(data="A=1"))[0] for _ in range(3)]
    assert statuses == [503, 503, 200]


def test_requests_are_recorded_without_the_token(onegate):
    call(onegate, body=form(data="A=1"))
    [request] = onegate.requests
    assert request.attrs == {"A": "1"}
    assert onegate.token_for(VM_ID) not in repr(request)


def test_start_stop_frees_the_port():
    onegate = OneGateDouble().start()
    port = onegate.port
    onegate.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen("http://127.0.0.1:%d/vm" % port, timeout=2)


@pytest.mark.parametrize("text, expected", [
    ('A="1"\nB=two words', {"A": "1", "B": "two words"}),
    ("\n\nx_y = 3\n", {"X_Y": "3"}),
    ("V=[A=1,B=2]", {"V": "[A=1,B=2]"}),
])
def test_parse_template_attrs(text, expected):
    assert dict(parse_template_attrs(text)) == expected
