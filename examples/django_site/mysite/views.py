"""A view that reads through the cache and fills it on a miss: what mcpool's ops stand for."""

from django.core.cache import cache
from django.http import JsonResponse


def product(request, product_id: int) -> JsonResponse:
    key = f"product:{product_id}"
    data = cache.get(key)
    if data is None:
        data = {"id": product_id, "name": f"Product {product_id}"}  # a database query, in a real site
        cache.set(key, data, 300)
    return JsonResponse(data)
