"""REST API of directories, mailing lists and contacts (CONTRACT.md §5)."""

import pytest
from rest_framework.test import APIClient

from contacts.models import Contact, MailingList
from contacts.services import contact_set_opt_out, transaction_append
from tests.factories import make_contact, make_directory, make_mailing_list, make_user


@pytest.fixture
def reader_client(db):
    client = APIClient()
    client.force_authenticate(make_user(username="reader", is_staff=False))
    return client


@pytest.mark.django_db
def test_contact_shows_every_contract_field(api_client):
    directory = make_directory()
    mailing_list = make_mailing_list(directory=directory, name="Customers")
    contact = make_contact(
        directory=directory,
        mailing_lists=[mailing_list],
        first_name="Tom",
        last_name="O'Brien",
        email="tom.obrien@example.org",
        phone="+442079460003",
        external_data_reference="0038a00000Pq03xAAB",
        language="EN",
        embedded_data={"CaseNumber": "00002103", "Store Region": "Norte"},
    )
    transaction_append(contact=contact, data={"Amount": "10"}, run_id=5)
    contact_set_opt_out(contact=contact, channel="sms", opted_out=True, source="SMS STOP")
    body = api_client.get(f"/api/v1/contacts/{contact.pk}/").json()
    assert body["first_name"] == "Tom" and body["last_name"] == "O'Brien"
    assert body["email"] == "tom.obrien@example.org"
    assert body["phone"] == "+442079460003"
    assert body["external_data_reference"] == "0038a00000Pq03xAAB"
    assert body["language"] == "EN"
    assert body["opted_out"] == {"email": False, "sms": True}
    assert body["embedded_data"] == {"CaseNumber": "00002103", "Store Region": "Norte"}
    assert [t["data"] for t in body["transactions"]] == [{"Amount": "10"}]
    assert set(body["transactions"][0]) >= {"id", "created_at", "data"}
    assert body["mailing_lists"] == [mailing_list.pk]
    assert body["directory"] == directory.pk


@pytest.mark.django_db
def test_contacts_filter_by_email_and_mailing_list(api_client):
    directory = make_directory()
    customers = make_mailing_list(directory=directory)
    partners = make_mailing_list(directory=directory)
    ana = make_contact(directory=directory, email="Ana@Example.org", mailing_lists=[customers])
    make_contact(directory=directory, email="bo@example.org", mailing_lists=[partners])
    both = make_contact(
        directory=directory, email="cy@example.org", mailing_lists=[customers, partners]
    )

    def emails(query: str) -> list[str]:
        response = api_client.get(f"/api/v1/contacts/{query}")
        assert response.status_code == 200, response.content
        return [row["email"] for row in response.json()["results"]]

    assert emails("?email=ana@EXAMPLE.org") == [ana.email]
    assert emails(f"?mailing_list={customers.pk}") == [both.email, ana.email]
    assert emails(f"?mailing_list={partners.pk}&email=cy@example.org") == [both.email]
    assert emails("?email=nobody@example.org") == []
    assert api_client.get("/api/v1/contacts/").json()["count"] == 3
    bad = api_client.get("/api/v1/contacts/?mailing_list=abc")
    assert bad.status_code == 400 and "mailing_list" in bad.json()


@pytest.mark.django_db
def test_staff_create_a_contact_normalised(api_client):
    directory = make_directory(default_country="US")
    mailing_list = make_mailing_list(directory=directory)
    response = api_client.post(
        "/api/v1/contacts/",
        {
            "directory": directory.pk,
            "first_name": "Sofía",
            "last_name": "Núñez",
            "email": " Sofia.Nunez@EXAMPLE.org ",
            "phone": "(415) 555-0100",
            "embedded_data": {"Region": "EMEA"},
            "mailing_lists": [mailing_list.pk],
            "opted_out": {"email": True},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["email"] == "Sofia.Nunez@example.org"
    assert body["phone"] == "+14155550100"
    assert body["opted_out"] == {"email": True, "sms": False}
    contact = Contact.objects.get()
    assert contact.email_opted_out_source == "API (owner)"
    assert list(contact.mailing_lists.all()) == [mailing_list]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("email", "x", "not a valid email address: 'x'"),
        ("phone", "(415) 55", "cannot read phone number '(415) 55' for country US"),
        (
            "email",
            "TAKEN@example.org",
            "a contact with this email already exists in this directory",
        ),
        (
            "external_data_reference",
            "ref-1",
            "a contact with this external data reference already exists in this directory",
        ),
    ],
)
def test_manual_create_is_validated_per_field(api_client, field, value, message):
    directory = make_directory()
    make_contact(directory=directory, email="taken@example.org", external_data_reference="REF-1")
    payload = {
        "directory": directory.pk,
        "first_name": "A",
        "last_name": "B",
        "email": "a@example.org",
    }
    response = api_client.post("/api/v1/contacts/", {**payload, field: value}, format="json")
    assert response.status_code == 400
    assert response.json() == {field: [message]}
    assert Contact.objects.count() == 1


@pytest.mark.django_db
def test_manual_create_reports_every_wrong_field_at_once(api_client):
    # Not one error per attempt: the email, the phone, the time zone and the embedded
    # data are all wrong, and one answer says so for each of them.
    directory = make_directory()
    response = api_client.post(
        "/api/v1/contacts/",
        {
            "directory": directory.pk,
            "email": "not-an-email",
            "phone": "12",
            "time_zone": "Mars/Base",
            "embedded_data": {"x" * 201: "1"},
        },
        format="json",
    )
    assert response.status_code == 400
    errors = response.json()
    assert set(errors) == {"email", "phone", "time_zone", "embedded_data"}, errors
    assert errors["time_zone"] == ["unknown time zone 'Mars/Base'"]
    assert Contact.objects.count() == 0


@pytest.mark.django_db
def test_same_email_is_allowed_in_another_directory(api_client):
    make_contact(directory=make_directory(), email="taken@example.org")
    response = api_client.post(
        "/api/v1/contacts/",
        {"directory": make_directory().pk, "email": "taken@example.org"},
        format="json",
    )
    assert response.status_code == 201, response.content


@pytest.mark.django_db
def test_staff_update_a_contact(api_client):
    directory = make_directory()
    other_list = make_mailing_list(directory=make_directory())
    contact = make_contact(directory=directory, email="a@example.org", embedded_data={"A": "1"})
    make_contact(directory=directory, email="taken@example.org")
    url = f"/api/v1/contacts/{contact.pk}/"
    response = api_client.patch(
        url, {"embedded_data": {"B": "2"}, "phone": "+44 20 7946 0001"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["embedded_data"] == {"B": "2"}
    assert response.json()["phone"] == "+442079460001"
    taken = api_client.patch(url, {"email": "Taken@example.org"}, format="json")
    assert taken.status_code == 400
    assert taken.json() == {"email": ["a contact with this email already exists in this directory"]}
    moved = api_client.patch(url, {"mailing_lists": [other_list.pk]}, format="json")
    assert moved.status_code == 400
    assert "belongs to another directory" in moved.json()["mailing_lists"][0]
    contact.refresh_from_db()
    assert contact.email == "a@example.org"


@pytest.mark.django_db
def test_non_staff_can_read_but_not_write(reader_client):
    directory = make_directory()
    contact = make_contact(directory=directory)
    assert reader_client.get("/api/v1/contacts/").status_code == 200
    assert reader_client.get("/api/v1/mailing-lists/").status_code == 200
    assert reader_client.get("/api/v1/directories/").status_code == 200
    refused = [
        reader_client.post(
            "/api/v1/contacts/",
            {"directory": directory.pk, "email": "n@example.org"},
            format="json",
        ),
        reader_client.patch(f"/api/v1/contacts/{contact.pk}/", {"first_name": "X"}, format="json"),
        reader_client.delete(f"/api/v1/contacts/{contact.pk}/"),
        reader_client.post(
            "/api/v1/mailing-lists/", {"directory": directory.pk, "name": "L"}, format="json"
        ),
        reader_client.post("/api/v1/directories/", {"name": "D"}, format="json"),
    ]
    assert [response.status_code for response in refused] == [403] * 5
    assert refused[0].json()["detail"] == "only staff members can change the contact directory"


@pytest.mark.django_db
def test_anonymous_is_refused(client):
    assert client.get("/api/v1/contacts/").status_code in (401, 403)


@pytest.mark.django_db
def test_mailing_lists_crud_with_contact_count(api_client):
    directory = make_directory()
    created = api_client.post(
        "/api/v1/mailing-lists/", {"name": "Customers", "directory": directory.pk}, format="json"
    )
    assert created.status_code == 201, created.content
    list_id = created.json()["id"]
    make_contact(directory=directory, mailing_lists=[MailingList.objects.get(pk=list_id)])
    make_contact(directory=directory)
    listed = api_client.get("/api/v1/mailing-lists/").json()["results"]
    assert listed == [
        {
            "id": list_id,
            "name": "Customers",
            "directory": directory.pk,
            "contact_count": 1,
            "created_at": listed[0]["created_at"],
        }
    ]
    duplicate = api_client.post(
        "/api/v1/mailing-lists/", {"name": "Customers", "directory": directory.pk}, format="json"
    )
    assert duplicate.status_code == 400
    renamed = api_client.patch(f"/api/v1/mailing-lists/{list_id}/", {"name": "VIP"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "VIP"
    assert api_client.delete(f"/api/v1/mailing-lists/{list_id}/").status_code == 204
    # Deleting a list keeps its contacts.
    assert Contact.objects.count() == 2


@pytest.mark.django_db
def test_directories_crud_with_rules(api_client):
    created = api_client.post(
        "/api/v1/directories/",
        {
            "name": "EU customers",
            "default_country": "gb",
            "match_rules": ["external_data_reference", "email"],
            "default_time_zone": "Europe/London",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["default_country"] == "GB"
    assert body["match_rules"] == ["external_data_reference", "email"]
    defaults = api_client.post("/api/v1/directories/", {"name": "Plain"}, format="json").json()
    assert defaults["match_rules"] == ["email", "external_data_reference"]
    assert defaults["default_country"] == "US"
    bad = api_client.post(
        "/api/v1/directories/",
        {
            "name": "Bad",
            "default_country": "XX",
            "match_rules": ["phone"],
            "default_time_zone": "Mars/Base",
        },
        format="json",
    )
    assert bad.status_code == 400
    errors = bad.json()
    assert errors["default_country"] == [
        "unknown country code 'XX': use a two-letter code such as US or GB"
    ]
    assert "unknown match rule 'phone'" in errors["match_rules"][0]
    assert "unknown time zone 'Mars/Base'" in errors["default_time_zone"][0]


@pytest.mark.django_db
def test_a_directory_with_contacts_cannot_be_deleted(api_client):
    directory = make_directory()
    make_contact(directory=directory)
    response = api_client.delete(f"/api/v1/directories/{directory.pk}/")
    assert response.status_code == 409
    assert "still has contacts" in response.json()["detail"]


def test_unknown_contact_keys_are_refused_not_dropped(api_client):
    directory = make_directory()
    created = api_client.post(
        "/api/v1/contacts/",
        {"directory": directory.pk, "email": "p6@example.org", "nickname": "x"},
        format="json",
    )
    assert created.status_code == 400
    assert "nickname" in created.json()
    contact = make_contact(directory=directory, first_name="Ada")
    url = f"/api/v1/contacts/{contact.pk}/"
    typo = api_client.patch(url, {"first_nme": "X"}, format="json")
    assert typo.status_code == 400 and "first_nme" in typo.json()
    fax = api_client.patch(url, {"opted_out": {"fax": True}}, format="json")
    assert fax.status_code == 400 and "fax" in str(fax.json())
    contact.refresh_from_db()
    assert contact.first_name == "Ada"


def test_unknown_keys_of_a_workflow_copy_are_refused(api_client):
    from tests.factories import make_workflow
    from xmflows.models import Workflow

    workflow = make_workflow(owner=make_user(username="copied"))
    answer = api_client.post(
        f"/api/v1/workflows/{workflow.pk}/copy/", {"nmae": "Mine"}, format="json"
    )
    assert answer.status_code == 400 and "nmae" in answer.json()
    assert Workflow.objects.count() == 1
