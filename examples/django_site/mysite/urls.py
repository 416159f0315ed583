from django.urls import path

from mysite import views

urlpatterns = [path("product/<int:product_id>", views.product)]
