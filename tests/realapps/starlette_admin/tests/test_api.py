def test_orders(client):
    orders = client.get("/api/orders").json()
    assert [o["product"] for o in orders] == ["Tea", "Cake", "Jam"] * 2


def test_create_orders_then_list(client):
    for quantity in (1, 2, 3):
        response = client.post(
            "/api/orders", json={"customer_id": 3, "product_id": 2, "quantity": quantity}
        )
        assert response.status_code == 201
        assert response.json()["product"] == "Cake"
    assert len(client.get("/api/orders").json()) == 9


def test_customers(client):
    for customer_id in (1, 2, 3, 2):
        assert client.get(f"/api/customers/{customer_id}").json()["id"] == customer_id
    assert client.get("/api/customers/99").status_code == 404


def test_customer_orders(client):
    orders = client.get("/api/customers/1/orders").json()
    assert [o["product"] for o in orders] == ["Tea", "Jam", "Cake"]
