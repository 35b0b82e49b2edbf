import pytest


@pytest.mark.parametrize("identity", ["customer", "product"])
def test_list(client, identity):
    response = client.get(f"/admin/{identity}/list")
    assert response.status_code == 200
    assert response.text.count("<tr>") == 3


def test_unknown_model(client):
    assert client.get("/admin/invoice/list").status_code == 404


def test_create_edit_list(client):
    for name in ("Dee", "Eve", "Fay"):
        response = client.post("/admin/customer/create", data={"name": name, "email": "x@y.z"})
        assert response.status_code == 200  # followed to the details page
        assert f"<dd>{name}</dd>" in response.text
    response = client.post("/admin/customer/edit/4", data={"name": "Dora", "email": "d@y.z"})
    assert "<dd>Dora</dd>" in response.text
    listing = client.get("/admin/customer/list").text
    assert listing.count("<tr>") == 6
    assert "Dora" in listing


def test_details_of_every_customer(client):
    for pk in (1, 2, 3, 1, 2):
        response = client.get(f"/admin/customer/details/{pk}")
        assert response.status_code == 200
    assert client.get("/admin/customer/details/99").status_code == 404


def test_order_details_reloaded(client):
    for _ in range(4):
        response = client.get("/admin/order/details/1")
        assert "<dd>Ada</dd>" in response.text


def test_create_and_delete_products(client):
    for name in ("Milk", "Honey", "Salt"):
        client.post("/admin/product/create", data={"name": name, "price": "2"})
    for pk in (4, 5, 6):
        response = client.post(f"/admin/product/delete/{pk}")
        assert response.status_code == 200
    assert client.get("/admin/product/list").text.count("<tr>") == 3


def test_order_list(client):
    response = client.get("/admin/order/list")
    assert response.text.count("<tr>") == 6
