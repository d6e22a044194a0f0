from django.contrib import admin

from shop.models import Category, Product, Store


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["path", "slug", "parent"]
    search_fields = ["name", "path"]
    list_select_related = ["parent"]
    prepopulated_fields = {"slug": ["name"]}
    autocomplete_fields = ["parent"]


@admin.register(Store)
class StoreAdmin(admin.ModelAdmin):
    list_display = ["name", "rating", "created_at"]
    search_fields = ["name", "description"]
    list_filter = ["categories"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["categories"]


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["title", "store", "category", "brand", "price", "stock", "is_active", "created_at"]
    list_filter = ["is_active", "category", "store"]
    search_fields = ["title", "description", "brand"]
    list_select_related = ["store", "category"]
    list_editable = ["price", "stock", "is_active"]
    autocomplete_fields = ["category", "store"]
    prepopulated_fields = {"slug": ["title"]}
    date_hierarchy = "created_at"
